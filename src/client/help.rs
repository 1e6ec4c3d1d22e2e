//! The examples at the end of each mode's `--help`, above the exit codes,
//! and how a host named like a mode is reached.

use super::error::EXIT_CODES_HELP;
use crate::config::cli::completions::shell_names;

/// `echo-client --help`.
pub const MAIN_EXAMPLES: &str = "\
Examples:
  echo-client 127.0.0.1:7878 'hello there'       send one message, check its echo
  echo-client ping 127.0.0.1:7878 -c 10           ten probes, one a second
  echo-client bench 127.0.0.1:7878 --connections 50 --duration 5
  echo-client probe 127.0.0.1 7878,7000-7010      which ports echo
  echo-client completions bash > /etc/bash_completion.d/echo-client

A first word close to a mode's name (pign, bnech) is refused with a
suggestion (exit 2) instead of being looked up as a host. To reach a host
named like a mode, name the mode first (echo-client send ping:7878,
echo-client ping ping:7878) or put -- before it (echo-client -- pign).";

/// `echo-client send --help`.
pub const SEND_EXAMPLES: &str = "\
Examples:
  echo-client send 127.0.0.1:7878 'hello there'
  echo-client send '[::1]:7878' --file big.iso
  echo-client send 127.0.0.1:7878 hi --udp --json";

/// `echo-client ping --help`.
pub const PING_EXAMPLES: &str = "\
Examples:
  echo-client ping 127.0.0.1:7878 -c 10 -i 0.2
  echo-client ping 127.0.0.1:7878 -c 0 --json-stream   one JSON line per probe
  echo-client ping 127.0.0.1:7878 --reconnect --strict

ping exits as iputils' ping does: 0 when any probe came back, even if
others were lost; when none came back, the code of the last failure (3, 4,
5, 6 or 7 below: never 0). An echo that differs is always exit 1. With
--strict every probe must come back: the code of the last lost probe
otherwise (130 if it was the one Ctrl+C interrupted).";

/// `echo-client bench --help`.
pub const BENCH_EXAMPLES: &str = "\
Examples:
  echo-client bench 127.0.0.1:7878 --connections 50 --duration 5
  echo-client bench 127.0.0.1:7878 --connections 4 --bulk -i 1 --format bits
  echo-client bench 127.0.0.1:7878 --connections 8 --json-stream -i 1

--connections is also -c (in ping, -c is the probe count, as ping's).";

/// `echo-client probe --help`.
pub const PROBE_EXAMPLES: &str = "\
Examples:
  echo-client probe 127.0.0.1 7878,7000-7010
  echo-client probe lab-host 7 --udp --json";

/// `echo-client completions --help`: where each shell's script goes, and
/// the few exit codes this mode has.
pub fn completions_help() -> String {
    format!(
        "\
Examples:
  echo-client completions bash > /etc/bash_completion.d/echo-client
  echo-client completions zsh > ~/.zfunc/_echo-client     (a directory in $fpath)
  echo-client completions fish > ~/.config/fish/completions/echo-client.fish
  echo-server --completions bash > /etc/bash_completion.d/echo-server

Exit codes:
  0    the script was written
  2    no SHELL, or not one of {}
  7    the script could not be written (stdout full or not writable)
A reader of stdout that goes away ends the client by SIGPIPE.",
        shell_names()
    )
}

/// A mode's examples followed by the exit codes, for `after_help`.
pub fn with_exit_codes(examples: &str) -> String {
    format!("{examples}\n\n{EXIT_CODES_HELP}")
}
