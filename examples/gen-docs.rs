//! Writes the man pages and shell completions of `echo-server` and
//! `echo-client`, generated from their clap definitions (so they list
//! exactly the options, defaults and ECHO_SERVER_* variables the binaries
//! take):
//!
//! ```sh
//! cargo run --release --example gen-docs -- target/docs
//! ```
//!
//! writes `target/docs/man/*.1` (one page per binary and per client mode)
//! and `target/docs/completions/` (bash, zsh, fish). README's "Deploy"
//! section says where to install them. The man pages are an example rather
//! than a subcommand so that their generator stays a dev-dependency; the
//! completion scripts are the ones the binaries print themselves
//! (`echo-client completions SHELL`, `echo-server --completions SHELL`).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Generator;
use echo_server::client::cli::ClientCli;
use echo_server::config::cli::completions::{self, Shell};
use echo_server::config::cli::Cli;

/// The shells whose scripts README installs system-wide; the binaries
/// print any shell's.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Both binaries' clap definitions, named as installed.
pub fn commands() -> [Command; 2] {
    [Cli::command(), ClientCli::command()]
}

/// Writes every page and completion script under `out`; returns their paths.
pub fn generate(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (man, completions) = (out.join("man"), out.join("completions"));
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    for cmd in commands() {
        clap_mangen::generate_to(cmd.clone(), &man)?;
        let name = cmd.get_name().to_string();
        for shell in SHELLS {
            let script = completions::script(shell, cmd.clone());
            std::fs::write(completions.join(shell.file_name(&name)), script)?;
        }
    }
    let mut written = Vec::new();
    for dir in [man, completions] {
        for entry in std::fs::read_dir(dir)? {
            written.push(entry?.path());
        }
    }
    written.sort();
    Ok(written)
}

fn main() -> std::process::ExitCode {
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/docs"), PathBuf::from);
    let mut stdout = std::io::stdout().lock();
    match generate(&out) {
        Ok(written) => {
            for path in written {
                let _ = writeln!(stdout, "{}", path.display());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "gen-docs: {}: {e}", out.display());
            std::process::ExitCode::FAILURE
        }
    }
}
