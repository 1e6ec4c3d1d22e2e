//! `echo-client completions`'s argument: the shell to write the script for.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Args;

use crate::config::cli::completions::{shell_names, Shell};

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell that will load the script.
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: Shell,
}

/// clap's error for `completions` without a SHELL says only that one is
/// missing: this one also names the shells. Any other error is returned
/// as it is.
pub fn name_the_shells(error: clap::Error, command: &mut clap::Command) -> clap::Error {
    let missing_shell = error.kind() == ErrorKind::MissingRequiredArgument
        && matches!(
            error.get(ContextKind::InvalidArg),
            Some(ContextValue::Strings(args)) if args.iter().any(|a| a == "<SHELL>")
        );
    match command.find_subcommand_mut("completions") {
        Some(mode) if missing_shell => mode.error(
            ErrorKind::MissingRequiredArgument,
            format!(
                "name the shell to write the completion script for: one of {}",
                shell_names()
            ),
        ),
        _ => error,
    }
}
