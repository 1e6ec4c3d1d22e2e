//! Shell completion scripts made at run time from a binary's clap
//! definition: `echo-client completions SHELL`, `echo-server --completions
//! SHELL` and examples/gen-docs.rs all write them here, so the three never
//! disagree.

use clap::ValueEnum;
pub use clap_complete::Shell;

/// The completion script for `shell` that completes `cmd` (a binary's whole
/// definition), invoked by its name.
pub fn script(shell: Shell, mut cmd: clap::Command) -> String {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    // The generators write text built from our own UTF-8 definitions.
    String::from_utf8_lossy(&out).into_owned()
}

/// Every shell there is a script for, as named on the command line:
/// "bash, elvish, fish, powershell, zsh".
pub fn shell_names() -> String {
    Shell::value_variants()
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .map(|value| value.get_name().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_shell_gets_a_script_naming_the_binary() {
        assert_eq!(shell_names(), "bash, elvish, fish, powershell, zsh");
        for shell in Shell::value_variants() {
            let text = script(*shell, crate::config::cli::Cli::command());
            assert!(text.contains("echo-server"), "{shell}");
            assert!(text.contains("busy-poll"), "{shell}");
        }
    }

    // The script is the definition's alone: printed before a --config file
    // is read, and no file or --print-config treats it as a setting.
    #[test]
    fn the_server_prints_it_and_it_is_no_setting() {
        use crate::config::cli::Cli;
        use crate::config::file;
        use crate::config::sources::{load, Startup};
        let args = [
            "echo-server",
            "--completions",
            "zsh",
            "--config",
            "/no/such/file",
        ];
        match load(args) {
            Ok(Startup::Print(text)) => assert!(text.starts_with("#compdef echo-server\n")),
            other => panic!("{other:?}"),
        }
        match load(["echo-server", "--print-config"]) {
            Ok(Startup::Print(text)) => assert!(!text.contains("completions"), "{text}"),
            other => panic!("{other:?}"),
        }
        let e = file::parse("completions = \"bash\"\n", "f.toml", &Cli::command()).unwrap_err();
        assert!(e.to_string().contains("unknown key 'completions'"), "{e}");
    }
}
