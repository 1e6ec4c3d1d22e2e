//! "did you mean `ping`?": a first word that is close to a mode's name is
//! a typo, not a host to look up (which would fail minutes later, or
//! worse, reach a host of that name).
//!
//! The rule: no mode was named, no `--` was given, and the address as
//! typed is a bare word (no `:`, `.`, `[`: not HOST:PORT nor an IP) within
//! [`MAX_DISTANCE`] edits of a mode's name. `--help` says how a host named
//! like a mode is reached anyway.

use clap::error::ErrorKind;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use super::cli::{name_the_shells, ClientCli};

/// Edits (insert, delete, substitute, swap two neighbours) still taken as
/// a typo of a mode's name.
pub const MAX_DISTANCE: usize = 2;

/// Parses the command line as [`ClientCli`], refusing a mistyped mode with
/// clap's usage error (exit 2); `--help`, `--version` and other errors
/// exit as clap does.
pub fn parse() -> ClientCli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match try_parse(&args) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

/// [`parse`] on given arguments (the program name first).
pub fn try_parse(args: &[std::ffi::OsString]) -> Result<ClientCli, clap::Error> {
    let mut command = ClientCli::command();
    let matches = command
        .try_get_matches_from_mut(args)
        .map_err(|e| name_the_shells(e, &mut command))?;
    if let Some(message) = mistyped_mode(&command, &matches, args) {
        return Err(command.error(ErrorKind::InvalidSubcommand, message));
    }
    ClientCli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

fn mistyped_mode(
    command: &clap::Command,
    matches: &ArgMatches,
    args: &[std::ffi::OsString],
) -> Option<String> {
    if matches.subcommand().is_some() || args.iter().skip(1).any(|a| a == "--") {
        return None;
    }
    let word = matches.get_raw("address")?.next()?.to_str()?;
    let modes: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
    let mode = closest_mode(word, &modes)?;
    Some(format!(
        "`{word}` is not a mode: did you mean `{mode}`?\n\n  \
         To send to a host named {word}, name the mode: `echo-client send {word}`, \
         or put -- before it: `echo-client -- {word}`"
    ))
}

/// The mode `word` is a typo of, if it is a bare word close to one.
pub fn closest_mode<'a>(word: &str, modes: &[&'a str]) -> Option<&'a str> {
    if word.is_empty() || word.contains([':', '.', '[', '%']) {
        return None;
    }
    let lower = word.to_ascii_lowercase();
    modes
        .iter()
        .map(|&m| (distance(&lower, m), m))
        // A match must keep at least one of the word's letters: a one- or
        // two-letter host is within two edits of every mode.
        .filter(|&(d, _)| d <= MAX_DISTANCE && d < lower.chars().count())
        .min_by_key(|&(d, _)| d)
        .map(|(_, m)| m)
}

/// Optimal string alignment distance: Levenshtein plus the swap of two
/// neighbours (`pign` is one edit from `ping`, not two).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [&str; 6] = ["send", "ping", "bench", "probe", "completions", "help"];

    #[test]
    fn typos_of_a_mode_are_caught() {
        for (word, mode) in [
            ("pign", "ping"),
            ("pnig", "ping"),
            ("PING", "ping"),
            ("pin", "ping"),
            ("bnech", "bench"),
            ("benchh", "bench"),
            ("prob", "probe"),
            ("sned", "send"),
            ("completion", "completions"),
            ("compeltions", "completions"),
        ] {
            assert_eq!(closest_mode(word, &MODES), Some(mode), "{word}");
        }
    }

    #[test]
    fn hosts_are_left_alone() {
        for word in [
            "localhost",
            "pign:7878",
            "ping.lab",
            "10.0.0.1",
            "[::1]:7878",
            "::1",
            "lab-host",
            "a",
            "ab",
            "",
            "completions:7878",
        ] {
            assert_eq!(closest_mode(word, &MODES), None, "{word}");
        }
    }

    #[test]
    fn distance_counts_a_swap_as_one_edit() {
        assert_eq!(distance("pign", "ping"), 1);
        assert_eq!(distance("ping", "ping"), 0);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    fn parse(args: &[&str]) -> Result<ClientCli, clap::Error> {
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        try_parse(&args)
    }

    #[test]
    fn the_command_line_refuses_a_mistyped_mode() {
        let e = parse(&["echo-client", "pign", "127.0.0.1:7878"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("did you mean `ping`?"), "{e}");
        // The ways round it, as --help gives them.
        for args in [
            &["echo-client", "send", "pign"][..],
            &["echo-client", "--", "pign"],
            &["echo-client", "pign:7878"],
            &["echo-client", "send", "completions"],
            &["echo-client", "--", "completions"],
        ] {
            let cli = parse(args).unwrap();
            let address = match &cli.mode {
                Some(crate::client::cli::Mode::Send(s)) => &s.address,
                _ => &cli.send.address,
            };
            assert_eq!(
                address.host,
                args[args.len() - 1].trim_end_matches(":7878"),
                "{args:?}"
            );
        }
        assert!(parse(&["echo-client", "ping", "ping"]).is_ok());
        assert!(matches!(
            parse(&["echo-client", "completions", "fish"]).unwrap().mode,
            Some(crate::client::cli::Mode::Completions(_))
        ));
        // Without its SHELL: the shells are named.
        let e = parse(&["echo-client", "completions"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .contains("one of bash, elvish, fish, powershell, zsh"),
            "{e}"
        );
    }
}
